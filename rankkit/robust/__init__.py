"""Robustness of rankers: perturbation sets, smoothed ranking, certification (CertDR) and attacks."""
