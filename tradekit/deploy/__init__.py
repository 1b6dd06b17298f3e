"""Releases of a model directory on a remote host (the Pi) over SSH, or on this machine.

Public entry points::

    from tradekit.deploy.ship import deploy_model, rollback   # -> DeployResult (deploy/1)
    from tradekit.deploy.release import build_release, check_model_dir
    from tradekit.deploy.transport import open_transport       # SSH (pinned keys) or local

fabric/paramiko are imported only when an SSH connection is opened.
"""
