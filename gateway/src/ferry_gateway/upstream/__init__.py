"""Where the call goes: which predictor serves a model and colour (``routing``, fed by the
ModelDeployment ``catalog``) and the pooled HTTP/1.1 client that forwards it (``pool``, ``httpclient``)."""
