"""The second toy world: a small text-to-image model built to Stable Diffusion 1.x's mechanics
(ε-prediction, scaled-linear betas, DDIM with leading spacing; a causal text encoder with a
prompt-independent start token and end-of-text padding; 16 cross-attention layers with 8 heads
each) on procedural scenes whose concepts' visual diversity is a dose. See `toy/README.md`."""
