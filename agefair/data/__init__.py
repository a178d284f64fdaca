"""Data layer: UTKFace labels, the scanned manifest, quality report, split and torch datasets."""
