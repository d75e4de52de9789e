"""Built-in plugin packs of schnitzel, installed as `schnitzel_plugins`.

Each folder is one pack, registered through the `schnitzel.plugins` entry-point group exactly
as a third-party pack is; the core never imports these modules by name.
"""
