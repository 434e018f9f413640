from .pricing import with_tax
