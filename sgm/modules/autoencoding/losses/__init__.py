"""Training losses of the autoencoders (sgm's `sgm.modules.autoencoding.losses` target paths)."""
from .discriminator_loss import GeneralLPIPSWithDiscriminator

__all__ = ["GeneralLPIPSWithDiscriminator"]
