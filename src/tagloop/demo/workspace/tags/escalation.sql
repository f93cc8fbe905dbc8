-- Rules for analysts, in SQL (see docs/rules.md, "SQL rules").

-- category: 服务 > 升级
-- owner: 客服部
-- description: An A-grade customer (CRM) shipping abroad goes to the overseas service team
CREATE RULE 海外A级客户 AS
SELECT * FROM customers
WHERE 客户等级 = 'A' AND country <> 'United Kingdom'
ESCALATE TO 海外客服组 WITH PRIORITY 2;
