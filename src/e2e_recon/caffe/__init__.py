"""Reading released Caffe files (weights and prototxts) without Caffe or protobuf."""

from __future__ import annotations

from e2e_recon.caffe.wire import read_caffemodel, read_caffemodel_blobs

__all__ = ["read_caffemodel", "read_caffemodel_blobs"]
