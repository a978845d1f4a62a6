"""The demo app: a prompt page whose answers come from a cached chat model."""
