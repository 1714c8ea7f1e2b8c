"""The one table of product naming conventions (docs/host-facts.md §1): clawdbot and openclaw."""

from __future__ import annotations

from reconciler.frozen import frozen


@frozen
class ProductNames:
    """Everything that is spelled differently per product name."""

    command: str  # the CLI on PATH
    package: str  # the npm package
    state_prefix: str  # ~/.<prefix> and ~/.<prefix>-<profile>
    config_file: str  # inside the state directory
    env_prefix: str  # CLAWDBOT_ / OPENCLAW_
    unit_prefix: str  # <prefix>-gateway[-<profile>].service
    workspace_prefix: str  # ~/clawd and ~/clawd-<profile>
    # The package's "bin" target inside node_modules/<package>/ (its package.json; the unit of
    # the gateway's own `gateway install` runs `<node> <this file> gateway --port N`).
    bin_path: str
    # The product this one replaced on a host: its state is kept where it is, its unit replaced
    # by a product move (docs/updates.md "The move from clawdbot to openclaw").
    succeeds: str | None = None

    def state_dir(self, profile: str) -> str:
        """The state directory of `profile`, `~`-relative (profile `default` has no suffix)."""
        return f"~/.{self.state_prefix}" + ("" if profile == "default" else f"-{profile}")

    def workspace(self, profile: str) -> str:
        return f"~/{self.workspace_prefix}" + ("" if profile == "default" else f"-{profile}")

    def unit(self, profile: str) -> str:
        return (
            f"{self.unit_prefix}-gateway"
            + ("" if profile == "default" else f"-{profile}")
            + ".service"
        )

    def env(self, name: str) -> str:
        """`env("STATE_DIR")` -> `CLAWDBOT_STATE_DIR`."""
        return f"{self.env_prefix}{name}"


PRODUCTS: dict[str, ProductNames] = {
    "clawdbot": ProductNames(
        command="clawdbot",
        package="clawdbot",
        state_prefix="clawdbot",
        config_file="clawdbot.json",
        env_prefix="CLAWDBOT_",
        unit_prefix="clawdbot",
        workspace_prefix="clawd",
        bin_path="dist/entry.js",  # clawdbot 2026.1.24-3: "bin": {"clawdbot": "dist/entry.js"}
    ),
    "openclaw": ProductNames(
        command="openclaw",
        package="openclaw",
        state_prefix="openclaw",
        config_file="openclaw.json",
        env_prefix="OPENCLAW_",
        unit_prefix="openclaw",
        workspace_prefix="clawd",
        bin_path="openclaw.mjs",  # openclaw 2026.1.30: "bin": {"openclaw": "openclaw.mjs"}
        succeeds="clawdbot",
    ),
}

# Unit name prefixes of every name the gateway has had: units of these in the user's unit
# directory that the spec does not own are legacy or duplicates (the "two gateways" problem).
GATEWAY_UNIT_PREFIXES = ("clawdbot-gateway", "moltbot-gateway", "openclaw-gateway")


def product_names(product: str) -> ProductNames:
    """The naming table of `product` (KeyError for an unknown product, which validation prevents)."""
    return PRODUCTS[product]


def config_file_in(product: str, state_dir: str) -> str:
    """The config file's name in a state directory whose last component is `state_dir`: the
    product's own, except in a directory named as the product it succeeds names its own
    (`.clawdbot`, `.clawdbot-ops` under openclaw), which keeps that product's file. A product
    move keeps the old paths, and openclaw reads a legacy `clawdbot.json` there (host-facts §8);
    a new `openclaw.json` beside it would hide the config the profile has."""
    names = PRODUCTS[product]
    if names.succeeds is not None:
        old = PRODUCTS[names.succeeds]
        own = f".{old.state_prefix}"
        if state_dir == own or state_dir.startswith(own + "-"):
            return old.config_file
    return names.config_file


def package_product(package: str) -> str | None:
    """The product whose own npm package `package` is (`openclaw` -> openclaw), None for
    another package (a fork, which follows the spec's product)."""
    return next((name for name, names in PRODUCTS.items() if names.package == package), None)
