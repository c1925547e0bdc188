from .encoders.conditioner import GeneralConditioner

UNCONDITIONAL_CONFIG = {"target": "sgm.modules.GeneralConditioner", "params": {"emb_models": []}}

__all__ = ["GeneralConditioner", "UNCONDITIONAL_CONFIG"]
