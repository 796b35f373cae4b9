"""Data layer: BData files, stimulus images, paired datasets, importers, downloads."""
