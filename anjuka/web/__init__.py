"""The web interface: server-rendered pages for desks, patrols, supervisors, admins, auditors.

Pages call the same operations as the API, under the same gate, scopes and
masks, in the same one transaction per request. What differs is the face:
HTML in Simplified Chinese (the default) or English, forms with a CSRF
token, refusals explained in words on the page.
"""
