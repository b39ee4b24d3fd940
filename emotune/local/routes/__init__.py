"""The local backend's routes, one module per resource (files, models, chat, fine-tuning jobs,
batches)."""

from . import batches, chat, files, jobs, models

ROUTERS = [files.router, models.router, chat.router, jobs.router, batches.router]
