"""The web dashboard: static pages served by the API process at `/dashboard` (docs/dashboard.md).

Plain HTML, CSS and JavaScript modules shipped as package data, no build step and nothing
from a CDN; the pages talk to the same HTTP API as any client, with the key the user signed in
with (kept in the tab's sessionStorage, sent only in `Authorization`).
"""
