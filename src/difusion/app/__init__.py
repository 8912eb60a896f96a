"""The explorer: a local web page to watch diffusion happen (``difusion explore``).

``explorer`` holds the functions behind each tab (plain tensors and pictures in, pictures and
numbers out, tested without a browser); ``ui`` lays them out as a Gradio page. Nothing here imports
Gradio until the page is built, so the rest of the package works without it.
"""
