"""The TensorFlow-free tf.Example class and TFRecord writer, read back by TensorFlow itself."""

import tensorflow as tf

from deepfake_detection.ingest import example_proto as pb
from deepfake_detection.ingest import tfrecords


def _example(number: int) -> bytes:
    """A serialized example (map entries in no fixed order: compare parsed messages)."""
    features = {
        "image": pb.Feature(bytes_list=pb.BytesList(value=[b"\x89PNG" + bytes([number])])),
        "box": pb.Feature(int64_list=pb.Int64List(value=[number, -3, 2**40])),
        "landmarks": pb.Feature(float_list=pb.FloatList(value=[0.25, number / 2])),
    }
    return pb.Example(features=pb.Features(feature=features)).SerializeToString()


def test_examples_parse_as_tensorflow_examples_with_the_same_values():
    parsed = tf.train.Example.FromString(_example(5))
    feature = parsed.features.feature
    assert feature["image"].bytes_list.value == [b"\x89PNG\x05"]
    assert list(feature["box"].int64_list.value) == [5, -3, 2**40]
    assert list(feature["landmarks"].float_list.value) == [0.25, 2.5]
    assert pb.Example.FromString(parsed.SerializeToString()) == pb.Example.FromString(_example(5))


def test_gzipped_tfrecords_read_back_by_tensorflow(tmp_path):
    path = str(tmp_path / "data.gz")
    with tfrecords.open_tfrecords(path) as stream:
        for number in range(3):
            tfrecords.write_record(stream, _example(number))
    read = [pb.Example.FromString(r.numpy()) for r in tf.data.TFRecordDataset(path, compression_type="GZIP")]
    assert read == [pb.Example.FromString(_example(number)) for number in range(3)]


def test_an_empty_file_is_an_empty_dataset(tmp_path):
    path = str(tmp_path / "empty.gz")
    tfrecords.open_tfrecords(path).close()
    assert list(tf.data.TFRecordDataset(path, compression_type="GZIP")) == []
