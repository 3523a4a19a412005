"""The standard zoo plugins (installed as ``zoo_plugins``), written exactly as a third-party
plugin: they import only ``zoo``'s public API and register through the ``zoo`` entry-point group."""
