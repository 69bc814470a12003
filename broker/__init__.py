"""The embedded MQTT broker (amqtt) and, later, Mosquitto integration.

The only package that imports amqtt. It never imports the controller or the
agent: what it needs from them (credentials, ACLs) is handed in.
"""
