"""The admin API's routes, one module per resource; ``admin/app.py`` assembles them."""
