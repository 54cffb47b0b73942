DROP TRIGGER customers_version ON customers;
DROP FUNCTION custos_bump_data_version();
