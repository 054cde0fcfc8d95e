"""Remedies for a collapsing prompt: ways to generate a two-concept prompt so that the dominated
concept is drawn beside the dominant one (beyond the paper, whose §3.8 replaces the dominant
concept by its category word).

Every remedy module here exposes one function with one signature, so that a chapter and
``dvd fix`` treat them alike:

    generate(pipe, prompts, seeds, sampler, *, dominant, dominated, **params) -> list[PIL.Image]

- ``prompts``: the prompts (str), ``seeds``: ints; the images come back in the order
  ``[(p, s) for p in prompts for s in seeds]``, each started from the seed's own initial latents
  (`dvdlib.generate.initial_latents`), so a remedy that does nothing gives the plain image;
- ``sampler``: the profile's sampler settings (`dvdlib.profiles.Profile.sampler`: resolution,
  steps, guidance, eta, ...), the keyword arguments of the pipeline call as
  `dvdlib.generate.pipeline_call` builds them;
- ``dominant`` / ``dominated``: per prompt, the words of the concept that takes over and of the
  one that vanishes (DominanceBench's ``content`` and ``nm_word``), located in the prompt with
  `dvdlib.tokens.concept_span` on `dvdlib.tokens.sequence_tokenizer(pipe)`;
- ``params``: the remedy's own named parameters, each with a documented default.

Each module also gives ``key(**params)`` → a JSON-able dict that keys its stored images beside the
sampler (its name and every parameter, defaults filled in), and ``applies(pipe)`` → None when the
remedy can run on that pipeline, else one sentence saying why not.
"""
