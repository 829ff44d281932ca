"""nlp182.vision: the vision half of the shared core, in our own code (no torchvision).

Modules: ``layers`` (conv geometry, padding, mean subtraction), ``init``, ``activations``,
``normalization`` (batch norm), ``dropout``, ``blocks``, ``resnet`` (torchvision's layout; calling it,
``resnet(depth=50)``, builds one by depth) and ``models`` (VGG, Inception, a small CNN, the ResNets),
``contract`` (timm's model contract every model follows), ``registry`` (models by name),
``transfer``, ``segmentation`` (FCN, UNet, pixel metrics), ``boxes``
(IoU, NMS, AP/mAP), ``visualize`` (filters, occlusion, saliency, activation maximisation),
``ensembles``, ``distillation``, ``fit`` (in-memory data through the shared Trainer) and ``data``.
The most used names are re-exported here; ``visualize`` and ``data`` are imported by module path
(they pull in matplotlib and scikit-learn).
"""

from nlp182.train.averaging import ExponentialMovingAverage
from nlp182.vision import resnet
from nlp182.vision.activations import ELU, LeakyReLU, Maxout, ReLU, Sigmoid, Tanh, make_activation
from nlp182.vision.blocks import BasicBlock, Bottleneck, ConvBNReLU, GlobalAvgPool, InceptionModule, VGGBlock
from nlp182.vision.boxes import box_iou, mean_average_precision, nms
from nlp182.vision.contract import VisionModel
from nlp182.vision.distillation import DistillationLoss, distillation_loss
from nlp182.vision.dropout import Dropout
from nlp182.vision.ensembles import Ensemble, average_parameters, snapshot_ensemble
from nlp182.vision.init import he_normal_, init_weights, xavier_normal_
from nlp182.vision.layers import conv_output_size, subtract_channel_mean, zero_pad
from nlp182.vision.models import (
    VGG,
    InceptionNet,
    ResNet,
    SmallCNN,
    resnet18,
    resnet34,
    resnet50,
    resnet101,
    resnet152,
    vgg16,
)
from nlp182.vision.normalization import BatchNorm, recalibrate_batch_norm
from nlp182.vision.registry import create_model, list_models, register_model
from nlp182.vision.segmentation import FCN, UNet, mean_iou, pixel_accuracy
from nlp182.vision.transfer import fine_tune_groups, freeze, unfreeze

__all__ = [
    "ELU",
    "FCN",
    "VGG",
    "BasicBlock",
    "BatchNorm",
    "Bottleneck",
    "ConvBNReLU",
    "DistillationLoss",
    "Dropout",
    "Ensemble",
    "ExponentialMovingAverage",
    "GlobalAvgPool",
    "InceptionModule",
    "InceptionNet",
    "LeakyReLU",
    "Maxout",
    "ReLU",
    "ResNet",
    "Sigmoid",
    "SmallCNN",
    "Tanh",
    "UNet",
    "VGGBlock",
    "VisionModel",
    "average_parameters",
    "box_iou",
    "conv_output_size",
    "create_model",
    "distillation_loss",
    "fine_tune_groups",
    "freeze",
    "he_normal_",
    "init_weights",
    "list_models",
    "make_activation",
    "mean_average_precision",
    "mean_iou",
    "nms",
    "pixel_accuracy",
    "recalibrate_batch_norm",
    "register_model",
    "resnet",
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "snapshot_ensemble",
    "subtract_channel_mean",
    "unfreeze",
    "vgg16",
    "xavier_normal_",
    "zero_pad",
]
