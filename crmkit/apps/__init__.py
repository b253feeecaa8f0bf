"""What people open: the manager app, the report and notebook views.

The Voilà app and its server, dashboard sections, the Papermill report, notebook views.
"""
