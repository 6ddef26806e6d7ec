"""The SMS channel: the signed provider-neutral webhook (`inbound`), Tencent Cloud's reply
callback (`tencent`), phone-number normalisation (`phone`) and the outbound gateway client
(`client`). Each module's docstring documents its wire format."""
