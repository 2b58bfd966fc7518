"""Correspondences around backprop: the constructions behind the catalogue experiments
(see `specs/correspondences.md` and the README section "Correspondences around backprop")."""

from .kl_directions import Fit, Quadrature, fit, functional_derivatives, gaussian_moments, kl, mixture_moments, quadrature, truncated_normal_moments
