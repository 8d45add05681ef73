"""Messages shared by the model server, the detection service and the clients: TF Serving's API without
TensorFlow (`tf_serving_api`), tensors as TensorProtos (`tensor_protos`) and image headers read before decoding
(`image_header`)."""
