"""Inspection: the doctor (consistency checks and repair) and statistics."""
