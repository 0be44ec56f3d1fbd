"""The browser console: a loopback HTTP front end over the service's REST API.

``server`` owns the HTTP side (the per-launch secret, the Host/Origin checks, the API proxy that
signs with loractl's client); ``static/`` holds the pages, plain HTML/CSS/JS with no build step.
"""
