"""nlp182.course: teaching demos built on the library (optimizer trajectories on test landscapes,
loss curves of the first-order optimizers on the digits). The library never imports this package;
the ``nlp182 optim`` commands and the benches do."""
