DROP TABLE agent_state;
DROP TABLE agent_quarantine;
DROP TABLE agent_notifications;
DROP TABLE agent_actions;
DROP TABLE agent_approvals;
DROP TABLE agent_decisions;
DROP TABLE agent_incidents;
