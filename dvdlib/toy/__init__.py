"""The toy world: a procedural scene renderer with controlled concept diversity
(`world`), a small text-to-image diffusion model that is a standard diffusers
`StableDiffusionPipeline` (`model`), and its deterministic, resumable training (`train`).
Command line: ``python -m dvdlib.toy`` (`dvdlib.toy.__main__.main`).
"""
