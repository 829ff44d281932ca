"""Image captioning with visual attention (Show, Attend and Tell): data, model, training, metrics.

Typical use::

    from nlp182.captioning import CaptionConfig, Captioner, train_captioner
    train_captioner(CaptionConfig(data="digits"), "runs/digits")
    captioner = Captioner.load("runs/digits")
    captioner.caption(captioner.load_images(["canvas.png"]))[0].text   # 'three one four'
"""

from nlp182.captioning.captioner import Caption, Captioner
from nlp182.captioning.config import CaptionConfig
from nlp182.captioning.model import CaptionModel, CaptionModelConfig
from nlp182.captioning.train import train_captioner

__all__ = ["Caption", "CaptionConfig", "CaptionModel", "CaptionModelConfig", "Captioner", "train_captioner"]
