"""meshsim: emulate a mesh of real Matrix homeservers and watch events travel across it."""
__version__ = "0.1.0"
