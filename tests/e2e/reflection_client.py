#!/usr/bin/env python3
"""A generic gRPC client that knows nothing about linvideo's protos: it learns the services and
message types from the server's reflection service (grpc.reflection.v1alpha, which grpc++ serves)
and calls methods with messages built from the reflected descriptors.

Uses only python3-grpcio and python3-protobuf (Debian 12 ships no grpc_reflection module and no
reflection.proto, so the reflection protocol's messages are declared here as descriptors).

  reflection_client.py HOST:PORT list
  reflection_client.py HOST:PORT describe SERVICE
  reflection_client.py HOST:PORT call SERVICE/METHOD 'TEXT_FORMAT_REQUEST'
(server-streaming calls print every response; each response is printed in text format.)
"""
import sys

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format

_REFLECTION = "grpc.reflection.v1alpha"
_T = descriptor_pb2.FieldDescriptorProto


def _reflection_file():
    """The reflection protocol's request/response messages (wire-compatible subset)."""
    f = descriptor_pb2.FileDescriptorProto(
        name="linvideo_generic/reflection.proto", package=_REFLECTION, syntax="proto3")

    def msg(name, fields, oneof=None):
        m = f.message_type.add(name=name)
        if oneof:
            m.oneof_decl.add(name=oneof[0])
        for fname, number, ftype, label, type_name in fields:
            fd = m.field.add(name=fname, number=number, type=ftype, label=label)
            if type_name:
                fd.type_name = "." + _REFLECTION + "." + type_name
            if oneof and fname in oneof[1]:
                fd.oneof_index = 0

    opt, rep = _T.LABEL_OPTIONAL, _T.LABEL_REPEATED
    s, b, i32, m = _T.TYPE_STRING, _T.TYPE_BYTES, _T.TYPE_INT32, _T.TYPE_MESSAGE
    msg("ServerReflectionRequest",
        [("host", 1, s, opt, None), ("file_by_filename", 3, s, opt, None),
         ("file_containing_symbol", 4, s, opt, None), ("list_services", 7, s, opt, None)],
        ("message_request", {"file_by_filename", "file_containing_symbol", "list_services"}))
    msg("FileDescriptorResponse", [("file_descriptor_proto", 1, b, rep, None)])
    msg("ServiceResponse", [("name", 1, s, opt, None)])
    msg("ListServiceResponse", [("service", 1, m, rep, "ServiceResponse")])
    msg("ErrorResponse", [("error_code", 1, i32, opt, None), ("error_message", 2, s, opt, None)])
    response = {"file_descriptor_response", "list_services_response", "error_response"}
    msg("ServerReflectionResponse",
        [("valid_host", 1, s, opt, None),
         ("original_request", 2, m, opt, "ServerReflectionRequest"),
         ("file_descriptor_response", 4, m, opt, "FileDescriptorResponse"),
         ("list_services_response", 6, m, opt, "ListServiceResponse"),
         ("error_response", 7, m, opt, "ErrorResponse")], ("message_response", response))
    return f


def _message_class(pool, full_name):
    desc = pool.FindMessageTypeByName(full_name)
    if hasattr(message_factory, "GetMessageClass"):  # protobuf >= 4.22
        return message_factory.GetMessageClass(desc)
    return message_factory.MessageFactory(pool).GetPrototype(desc)


class GenericClient:
    def __init__(self, target):
        self.channel = grpc.insecure_channel(target)
        own = descriptor_pool.DescriptorPool()
        own.Add(_reflection_file())
        self.req_cls = _message_class(own, _REFLECTION + ".ServerReflectionRequest")
        self.resp_cls = _message_class(own, _REFLECTION + ".ServerReflectionResponse")
        self.info = self.channel.stream_stream(
            "/" + _REFLECTION + ".ServerReflection/ServerReflectionInfo",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=self.resp_cls.FromString)
        self.pool = descriptor_pool.DescriptorPool()  # the server's types, learned on demand
        self.files = {}  # name -> FileDescriptorProto received

    def _ask(self, **kwargs):
        (resp,) = list(self.info(iter([self.req_cls(**kwargs)]), timeout=30))
        if resp.HasField("error_response"):
            raise RuntimeError("reflection error %d: %s" % (
                resp.error_response.error_code, resp.error_response.error_message))
        return resp

    def list_services(self):
        return [s.name for s in self._ask(list_services="").list_services_response.service]

    def _load_symbol(self, symbol):
        resp = self._ask(file_containing_symbol=symbol)
        for raw in resp.file_descriptor_response.file_descriptor_proto:
            fd = descriptor_pb2.FileDescriptorProto.FromString(raw)
            self.files.setdefault(fd.name, fd)
        # Add files once their dependencies are in (the server sends them transitively).
        added = True
        while added:
            added = False
            for name, fd in list(self.files.items()):
                if fd is None:
                    continue
                if all(self.files.get(d, 1) is None for d in fd.dependency):
                    self.pool.Add(fd)
                    self.files[name] = None  # added
                    added = True
                else:
                    for d in fd.dependency:
                        if d not in self.files:
                            self._load_file(d)
                            added = True

    def _load_file(self, filename):
        for raw in self._ask(file_by_filename=filename).file_descriptor_response.file_descriptor_proto:
            fd = descriptor_pb2.FileDescriptorProto.FromString(raw)
            self.files.setdefault(fd.name, fd)

    def service(self, name):
        try:
            return self.pool.FindServiceByName(name)
        except KeyError:
            self._load_symbol(name)
            return self.pool.FindServiceByName(name)

    def call(self, full_method, request_text, timeout=60):
        service_name, method_name = full_method.rsplit("/", 1)
        method = self.service(service_name).FindMethodByName(method_name)
        req_cls = _message_class(self.pool, method.input_type.full_name)
        resp_cls = _message_class(self.pool, method.output_type.full_name)
        request = text_format.Parse(request_text, req_cls())
        path = "/%s/%s" % (service_name, method_name)
        kw = dict(request_serializer=lambda m: m.SerializeToString(),
                  response_deserializer=resp_cls.FromString)
        streaming_out = method.server_streaming if hasattr(method, "server_streaming") else False
        if streaming_out:
            return list(self.channel.unary_stream(path, **kw)(request, timeout=timeout))
        return [self.channel.unary_unary(path, **kw)(request, timeout=timeout)]


def main(argv):
    if len(argv) < 3:
        print(__doc__)
        return 64
    client = GenericClient(argv[1])
    if argv[2] == "list":
        for name in client.list_services():
            print(name)
    elif argv[2] == "describe":
        svc = client.service(argv[3])
        for m in svc.methods:
            print("%s(%s) returns (%s)" % (m.name, m.input_type.full_name, m.output_type.full_name))
    elif argv[2] == "call":
        try:
            responses = client.call(argv[3], argv[4] if len(argv) > 4 else "")
        except grpc.RpcError as e:
            print("error: %s: %s" % (e.code().name, e.details()))
            return e.code().value[0]
        for r in responses:
            print("response {\n%s}" % text_format.MessageToString(r, as_utf8=True, indent=2))
    else:
        print(__doc__)
        return 64
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
