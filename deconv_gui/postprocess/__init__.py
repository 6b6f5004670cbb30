"""Post-processing of class probabilities: ensembles (:mod:`.ensemble`) and the dense CRF (:mod:`.crf`)."""
