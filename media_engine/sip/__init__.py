"""SIP calls (WCS ``/call/*``): a real SIP user agent (PJSIP through its pjsua2 binding) that
registers, places one call, and bridges its audio to and from RTMP.

PJSIP keeps one endpoint per process, so each call runs in a child process of its own
(`agent`, driven over JSON lines by `process.CallProcess`); the Celery job that owns the call
row talks to that child. No Django here.
"""
