# Minimal stand-ins so the official model.py imports without diffusers.
class ConfigMixin:
    pass
def register_to_config(fn):
    return fn
