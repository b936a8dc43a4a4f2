"""Shared courseware (issue 15, R27): experts upload videos and slides, the CE association reviews them,
approved versions are recorded courses every learner can watch."""
