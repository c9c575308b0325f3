"""ClusterSecrets: the k3s tokens and each node's k3s node password."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pulumi

from pki.k3s import secure_token
from providers.random_secret import RandomSecret
from settings.model import Settings

TOKEN_LENGTH = 48
NODE_PASSWORD_LENGTH = 32


@dataclass(frozen=True)
class ClusterSecretsArgs:
    settings: Settings


@dataclass(frozen=True)
class NodeSecrets:
    """The generated secrets one node's stick carries: the join tokens in k3s's secure form (with the hash of the
    cluster's CA, so that a joining node checks the server it joins), the agents' password, its node password."""

    server_token: pulumi.Output[str]
    agent_token: pulumi.Output[str]
    agent_join_token: pulumi.Output[str]
    node_password: pulumi.Output[str]


class ClusterSecrets(pulumi.ComponentResource):
    """Secrets made once and kept: stable across `pulumi up`s, rotated only through `rotate` or `--replace`."""

    server_token: pulumi.Output[str]
    agent_token: pulumi.Output[str]
    node_passwords: dict[str, pulumi.Output[str]]

    def __init__(self, name: str, args: ClusterSecretsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ephemeros:index:ClusterSecrets", name, None, opts)
        rotate = args.settings.rotate
        child = pulumi.ResourceOptions(parent=self)

        def secret(suffix: str, length: int, generation: int) -> pulumi.Output[str]:
            return RandomSecret(f"{name}-{suffix}", length=length, generation=generation, opts=child).result

        self.server_token = secret("server-token", TOKEN_LENGTH, rotate.server_token)
        self.agent_token = secret("agent-token", TOKEN_LENGTH, rotate.agent_token)
        self.node_passwords = {
            node.hostname: secret(
                f"{node.hostname}-node-password",
                NODE_PASSWORD_LENGTH,
                rotate.node_passwords.get(node.hostname, 0),
            )
            for node in args.settings.nodes
        }
        self.register_outputs(
            {"serverToken": self.server_token, "agentToken": self.agent_token, "nodePasswords": self.node_passwords}
        )

    def for_nodes(self, cluster_ca: pulumi.Output[str]) -> JoinSecrets:
        """The secrets nodes carry. `cluster_ca`: the server CA's chain, whose root the secure tokens name."""

        def token(user: Literal["server", "node"], password: pulumi.Output[str]) -> pulumi.Output[str]:
            return pulumi.Output.all(cluster_ca, password).apply(lambda v: secure_token(v[0], user, v[1]))

        return JoinSecrets(
            server_token=token("server", self.server_token),
            agent_token=self.agent_token,
            agent_join_token=token("node", self.agent_token),
            node_passwords=self.node_passwords,
        )


@dataclass(frozen=True)
class JoinSecrets:
    """The join tokens, made once for every node, and each node's password."""

    server_token: pulumi.Output[str]
    agent_token: pulumi.Output[str]
    agent_join_token: pulumi.Output[str]
    node_passwords: dict[str, pulumi.Output[str]]

    def for_node(self, hostname: str) -> NodeSecrets:
        return NodeSecrets(self.server_token, self.agent_token, self.agent_join_token, self.node_passwords[hostname])
