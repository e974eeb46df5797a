"""One router per resource; `serving.app.ROUTERS` lists them."""
