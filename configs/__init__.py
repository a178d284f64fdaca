"""agefair's shipped configuration files. This folder is the ``agefair.configs`` package inside the
wheel (pyproject.toml maps it), so installed copies find their presets without the source tree."""
