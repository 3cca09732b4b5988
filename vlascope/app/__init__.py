"""The Qt inspector window. Only this package imports Qt; everything it shows comes from
``vlascope.core``."""
