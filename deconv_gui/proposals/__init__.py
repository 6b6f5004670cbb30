"""Object proposals: Edge Boxes on thin edge maps (OpenCV ximgproc), plus caller-given boxes.

``EdgeBoxProposer(config).propose(image)`` → :class:`Proposals` (boxes ×1.2, scores, raw boxes), the first step
of instance-wise DeconvNet inference. See :mod:`.edge_boxes` for the procedure and :mod:`.edge_maps` for the
edge maps (built-in gradient edges or a user-supplied structured-edge model).
"""

from deconv_gui.proposals.edge_boxes import (
    EdgeBoxConfig,
    EdgeBoxProposer,
    Proposals,
    proposals_from_boxes,
    select_proposals,
)
from deconv_gui.proposals.edge_maps import (
    StructuredEdgeModel,
    gradient_edges,
    gradient_edges_and_orientation,
    orientation_map,
    suppress_non_maxima,
)

__all__ = [
    "EdgeBoxConfig",
    "EdgeBoxProposer",
    "Proposals",
    "StructuredEdgeModel",
    "gradient_edges",
    "gradient_edges_and_orientation",
    "orientation_map",
    "proposals_from_boxes",
    "select_proposals",
    "suppress_non_maxima",
]
