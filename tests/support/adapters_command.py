"""``python -m support.adapters_command ARGS``: the real ``adapters`` command with the fault hooks of
``support.faults`` armed from ``ADAPTERS_FAULT`` (the installed console script never reads it)."""

from support.faults import arm_from_environment

arm_from_environment()

from loraledger.cli.main import main  # noqa: E402 - after arming, as a fault may sit in start-up

main()
