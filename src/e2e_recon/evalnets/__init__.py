"""Networks of the published evaluation suites, written to load the official weights.

The NSD benchmark (MindEye, MindEye2, Brain-Diffuser) scores reconstructions
with torchvision's AlexNet, Inception-v3 and EfficientNet-B1, a SwAV ResNet-50
and OpenAI's CLIP ViT-L/14; the Kamitani lab's analyses use AlexNet and VGG19.
The architectures are written here, module for module, so that the official
files load with ``load_state_dict(strict=True)`` under the same key names
(torchvision's ``features.0.weight`` ...; CLIP's ``visual.*``).

Why not torchvision, timm or open_clip: torchvision's wheels are built against
one exact torch release and fail to import beside another (its compiled
operators are missing), and timm and open_clip depend on it. The project runs
on the CPU build of torch that users have; requiring a matching torchvision
would force a multi-gigabyte reinstall of torch. The layers involved are
standard torch modules, so the architectures need nothing else.

Modules:

- :mod:`~e2e_recon.evalnets.convnets`: AlexNet, VGG19, ResNet-50.
- :mod:`~e2e_recon.evalnets.inception`: Inception-v3.
- :mod:`~e2e_recon.evalnets.efficientnet`: EfficientNet-B1.
- :mod:`~e2e_recon.evalnets.clip_vit`: CLIP's vision transformer.
- :mod:`~e2e_recon.evalnets.registry`: official URLs, checksums, loading from the
  data home, preprocessing.
- :mod:`~e2e_recon.evalnets.extract`: features at named modules.
"""
