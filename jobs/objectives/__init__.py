"""Inter-training objectives, one module each, named as in ``jobs.contract.intertrainings``.

A module ``jobs.objectives.<name>`` has
``train(ctx, texts, source, progress) -> (model, tokenizer, stats)``: train the encoder at
``source`` (a folder or model name) on ``texts`` (the corpus, in corpus order) with the
options in ``ctx.params.options``, and return a model whose ``base_model`` is the encoder
to keep, its tokenizer, and a dict of statistics (with ``train_s``).
"""
