"""``gleam_core.recon``: inference with a trained network, and writing its reconstructions
(:mod:`gleam_core.recon.formats`: h5, NIfTI, DICOM, PNG)."""
