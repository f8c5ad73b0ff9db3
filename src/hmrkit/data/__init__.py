"""Data: motion-capture readers (``hmrkit.data.mocap``), and later retargeting, samplers,
the detector-noise model and synthetic renders. Submodules are imported explicitly."""
