// Implemented in the formats work; see include/t2/formats/.
