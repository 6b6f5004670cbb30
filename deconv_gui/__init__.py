"""deconv_gui: DeconvNet semantic segmentation you can inspect, correct and retrain.

Data flows one way: image → proposals → crops → per-instance scores → aggregate → ensemble → CRF → label map
→ export. See README.md for the package layout.
"""

__version__ = "0.1.0"
