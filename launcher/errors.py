"""Errors meant for people: the message is one sentence naming the file, key, host or path.

The command line turns every `UserError` into `error: <message>` on stderr and exit status 2,
without a traceback. Anything else escaping is a bug in mae-launch.
"""


class UserError(Exception):
    """Bad input from the user; str(error) is the one sentence shown."""


class InventoryError(UserError):
    """The inventory file cannot be read, does not match the schema, or describes an impossible job.

    It may carry several problems (all found in one reading); str() puts each on its own line and
    the command line prints each as one `error:` line."""

    def __init__(self, *problems: str):
        super().__init__("\n".join(problems))
        self.problems = list(problems)


class PlanError(UserError):
    """A job cannot be planned: unknown job name, bad run id, missing checkpoint source."""
