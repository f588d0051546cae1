"""The package version; its major must equal libkne's (kne_version_number() // 10000)."""
__version__ = "0.1.0"
