"""File input/output: images in (all the odd formats), label maps and masks out, checkpoint files.

Writes are atomic (temporary file + rename); errors a user can cause raise
:class:`~deconv_gui.core.errors.DeconvGuiError` subclasses that name the file.
"""
