"""The stages layer: one module (or a few) per notebook step: data and explore (01), costs (03),
finetune (04), predict, metrics and evaluate (05). Stages use the core and talk to a server only
through a provider."""
