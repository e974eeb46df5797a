"""Online ranking stages added outside ``recsys`` (the learned ranker: ``ranking.learned``)."""
